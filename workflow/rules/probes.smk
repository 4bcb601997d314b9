# Probes (the paper's central result): the compute-optimal shape at a task's target budget,
# retrained at every budget up to a maximum with its final weights kept, probed on one shared
# probe set; random-init baselines of the same shape; one run with weights kept at steps 0, 1, 2,
# 4, ... (the target budget's run: its last step is that budget's model, trained and probed once);
# then quiet or loud, decided by the statistics of qlf.probes.classify_features.


rule keep_final_weights:
    input:
        record=RUN_RECORD,
        graphs=train_inputs,
    output:
        MODEL_FINAL,
    params:
        graphs_dir=GRAPHS_DIR,
    threads: 1
    resources:
        runtime=train_runtime,
        mem_mb=train_mem_mb,
    log:
        "logs/models/{task}/n{size}/C{exp}/{run_id}_final.log",
    benchmark:
        "benchmarks/models/{task}/n{size}/C{exp}/{run_id}_final.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/keep_weights.py"


rule keep_step_weights:
    input:
        record=RUN_RECORD,
        graphs=train_inputs,
    output:
        directory(MODEL_STEPS),
    params:
        graphs_dir=GRAPHS_DIR,
    threads: 1
    resources:
        runtime=train_runtime,
        mem_mb=train_mem_mb,
    log:
        "logs/models/{task}/n{size}/C{exp}/{run_id}_steps.log",
    benchmark:
        "benchmarks/models/{task}/n{size}/C{exp}/{run_id}_steps.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/keep_weights.py"


rule probe_budget:
    input:
        weights=lambda wildcards: probe_model(wildcards.task, int(wildcards.exp)),
        graphs=train_inputs,
    output:
        directory("results/probes/{task}/budgets/C{exp}"),
    params:
        graphs_dir=GRAPHS_DIR,
        options=PROBE_OPTIONS,
    resources:
        runtime=120,
        mem_mb=4000,
    log:
        "logs/probes/{task}/C{exp}.log",
    benchmark:
        "benchmarks/probes/{task}/C{exp}.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/probe_weights.py"


rule probe_random_inits:
    input:
        weights=lambda wildcards: target_weights(wildcards.task),
        graphs=train_inputs,
    output:
        directory("results/probes/{task}/random"),
    params:
        graphs_dir=GRAPHS_DIR,
        seeds=CONFIG["probes"].get("random_seeds", [0, 1, 2]),
        options=PROBE_OPTIONS,
    resources:
        runtime=120,
        mem_mb=4000,
    log:
        "logs/probes/{task}/random.log",
    benchmark:
        "benchmarks/probes/{task}/random.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/probe_random.py"


rule probe_step:
    input:
        steps=lambda wildcards: probe_model(
            wildcards.task, probe_target(wildcards.task), MODEL_STEPS
        ),
        graphs=train_inputs,
    output:
        directory("results/probes/{task}/within/step{step}"),
    params:
        graphs_dir=GRAPHS_DIR,
        options=PROBE_OPTIONS,
    resources:
        runtime=120,
        mem_mb=4000,
    log:
        "logs/probes/{task}/within/step{step}.log",
    benchmark:
        "benchmarks/probes/{task}/within/step{step}.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/probe_step.py"


rule collect_probes:
    input:
        across=lambda wildcards: [
            probe_dir(wildcards.task, exp) for exp in probe_budgets(wildcards.task)
        ],
        within=lambda wildcards: [
            f"results/probes/{wildcards.task}/within/step{step}"
            for step in within_steps(wildcards.task)
        ],
    output:
        across="results/probes/{task}/across_compute.csv",
        across_examples="results/probes/{task}/across_compute_per_example.csv",
        within="results/probes/{task}/within_run.csv",
    resources:
        runtime=10,
        mem_mb=2000,
    log:
        "logs/probes/{task}/collect.log",
    benchmark:
        "benchmarks/probes/{task}/collect.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/collect_probes.py"


rule quiet_loud:
    input:
        across=expand("results/probes/{task}/across_compute.csv", task=PROBE_TASKS),
        across_examples=expand(
            "results/probes/{task}/across_compute_per_example.csv", task=PROBE_TASKS
        ),
        random=expand("results/probes/{task}/random", task=PROBE_TASKS),
        transitions="results/scaling/transitions.csv",
    output:
        report(
            "results/probes/quiet_loud.csv",
            caption="../report/quiet_loud_table.rst",
            category="Probes",
            subcategory="Tables",
            labels={"table": "quiet or loud"},
        ),
    params:
        tasks=PROBE_TASKS,
        n_boot=CONFIG["probes"].get("n_boot", 1000),
        alpha=CONFIG["probes"].get("alpha", 0.05),
        seed=SEEDS[0],
    resources:
        runtime=10,
        mem_mb=2000,
    log:
        "logs/probes/quiet_loud.log",
    benchmark:
        "benchmarks/probes/quiet_loud.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/quiet_loud.py"


rule plot_probes:
    input:
        across=expand("results/probes/{task}/across_compute.csv", task=PROBE_TASKS),
        within=expand("results/probes/{task}/within_run.csv", task=PROBE_TASKS),
        random=expand("results/probes/{task}/random", task=PROBE_TASKS),
        verdicts="results/probes/quiet_loud.csv",
        frontiers=expand("results/scaling/{task}_frontier.csv", task=PROBE_TASKS),
        transitions="results/scaling/transitions.csv",
        within_records=lambda wildcards: [
            probe_model(task, probe_target(task), RUN_RECORD) for task in PROBE_TASKS
        ],
    output:
        grid=report(
            "results/plots/quiet_loud_grid.pdf",
            caption="../report/quiet_loud_grid.rst",
            category="Probes",
            subcategory="Figures",
            labels={"figure": "1. quiet/loud grid"},
        ),
        quiet_loud=report(
            "results/plots/quiet_loud_features.pdf",
            caption="../report/quiet_loud.rst",
            category="Probes",
            subcategory="Figures",
            labels={"figure": "2. probes across compute"},
        ),
        within=report(
            "results/plots/within_run_probes.pdf",
            caption="../report/within_run.rst",
            category="Probes",
            subcategory="Figures",
            labels={"figure": "3. probes within one run"},
        ),
    resources:
        runtime=10,
        mem_mb=2000,
    log:
        "logs/plots/probes.log",
    benchmark:
        "benchmarks/plots/probes.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/plot_probes.py"
