# The paper's headline numbers (qlf/paper_numbers.yaml) next to ours: transition budgets,
# quiet/loud verdicts and ablation drops, each with its agreement rule -> a table and a figure.


rule paper_comparison:
    input:
        transitions="results/scaling/transitions.csv",
        quiet_loud="results/probes/quiet_loud.csv",
        # one row per ablation (and seed); qlf.comparison also reads across_seeds.csv
        ablations="results/ablations/summary.csv",
    output:
        table=report(
            "results/paper_comparison.csv",
            caption="../report/paper_comparison_table.rst",
            category="Paper comparison",
            labels={"table": "paper comparison"},
        ),
        pdf=report(
            "results/plots/paper_comparison.pdf",
            caption="../report/paper_comparison.rst",
            category="Paper comparison",
            labels={"figure": "paper comparison"},
        ),
    params:
        # only what the comparison reads: sizes, budgets and the probed tasks
        config={
            "tasks": {t: {"size": e["size"], "budgets": e["budgets"]}
                      for t, e in CONFIG["tasks"].items()},
            "probes": {"tasks": PROBES.get("tasks", {})},
        },
    resources:
        runtime=5,
        mem_mb=1000,
    log:
        "logs/paper_comparison.log",
    benchmark:
        "benchmarks/paper_comparison.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/paper_comparison.py"
