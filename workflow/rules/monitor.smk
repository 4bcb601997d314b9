# The quiet-feature monitor's early warning: for every run on a monitored task's frontier, where
# its probes (fitted during training, summary.monitor) first drop and where its val loss leaves
# the plateau (rules in qlf.monitor) -> a tidy table and a figure.


rule early_warning:
    input:
        frontiers=expand("results/scaling/{task}_frontier.csv", task=MONITOR_TASKS),
        records=lambda wildcards: monitor_records(),
    output:
        "results/monitor/early_warning.csv",
    resources:
        runtime=10,
        mem_mb=1000,
    log:
        "logs/monitor/early_warning.log",
    benchmark:
        "benchmarks/monitor/early_warning.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/early_warning.py"


rule plot_early_warning:
    input:
        "results/monitor/early_warning.csv",
    output:
        report(
            "results/plots/early_warning.pdf",
            caption="../report/early_warning.rst",
            category="Monitor",
        ),
    resources:
        runtime=10,
        mem_mb=2000,
    log:
        "logs/plots/early_warning.log",
    benchmark:
        "benchmarks/plots/early_warning.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/plot_early_warning.py"
