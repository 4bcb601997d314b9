# Collect a task's runs -> its compute-optimal frontier (a checkpoint that later stages read)
# -> power-law fits and transition budgets -> the scaling-law figure.


rule collect_runs:
    input:
        task_records,
    output:
        "results/scaling/{task}.csv",
    resources:
        runtime=10,
        mem_mb=1000,
    log:
        "logs/scaling/{task}_collect.log",
    benchmark:
        "benchmarks/scaling/{task}_collect.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/collect_runs.py"


checkpoint frontier:
    input:
        "results/scaling/{task}.csv",
    output:
        report(
            "results/scaling/{task}_frontier.csv",
            caption="../report/frontier.rst",
            category="Scaling law",
            subcategory="Tables",
            labels={"table": "frontier", "task": "{task}"},
        ),
    resources:
        runtime=5,
        mem_mb=1000,
    log:
        "logs/scaling/{task}_frontier.log",
    benchmark:
        "benchmarks/scaling/{task}_frontier.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/frontier.py"


rule transitions:
    input:
        expand("results/scaling/{task}_frontier.csv", task=TASK_NAMES),
    output:
        report(
            "results/scaling/transitions.csv",
            caption="../report/transitions.rst",
            category="Scaling law",
            subcategory="Tables",
            labels={"table": "transitions", "task": "all"},
        ),
    params:
        options=CONFIG["scaling"],
    resources:
        runtime=5,
        mem_mb=1000,
    log:
        "logs/scaling/transitions.log",
    benchmark:
        "benchmarks/scaling/transitions.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/transitions.py"


rule plot_scaling_law:
    input:
        frontiers=expand("results/scaling/{task}_frontier.csv", task=TASK_NAMES),
        runs=expand("results/scaling/{task}.csv", task=TASK_NAMES),
        transitions="results/scaling/transitions.csv",
    output:
        pdf=report(
            "results/plots/scaling_law.pdf",
            caption="../report/scaling_law.rst",
            category="Scaling law",
            subcategory="Figures",
            labels={"figure": "scaling law", "task": "all"},
        ),
        pngs=[
            report(
                f"results/plots/scaling_law/{task}.png",
                caption="../report/scaling_law_task.rst",
                category="Scaling law",
                subcategory="Figures",
                labels={"figure": "scaling law", "task": task},
            )
            for task in TASK_NAMES
        ],
    params:
        tasks=TASK_NAMES,
        options=CONFIG["plots"],
    resources:
        runtime=10,
        mem_mb=2000,
    log:
        "logs/plots/scaling_law.log",
    benchmark:
        "benchmarks/plots/scaling_law.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/plot_scaling_law.py"
