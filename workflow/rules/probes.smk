# Probes (the paper's central result): the compute-optimal shape at a task's target budget,
# retrained at every budget up to a maximum with its final weights kept, probed on one shared
# probe set; random-init baselines of the same shape; one run with weights kept at steps 0, 1, 2,
# 4, ... (the target budget's run: its last step is that budget's model, trained and probed once);
# then quiet or loud, decided by the statistics of qlf.probes.classify_features. All of it once
# per training seed (config `seed: [...]`; each seed's own probe set) under
# results/probes/{task}/seed{seed}/; the verdicts combine the seeds (verdicts_across_seeds).


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
        weights=lambda wildcards: probe_model(wildcards.task, wildcards.exp, wildcards.seed),
        graphs=train_inputs,
    output:
        directory("results/probes/{task}/seed{seed}/budgets/C{exp}"),
    params:
        graphs_dir=GRAPHS_DIR,
        options=PROBE_OPTIONS,
    resources:
        runtime=120,
        mem_mb=4000,
    log:
        "logs/probes/{task}/seed{seed}/C{exp}.log",
    benchmark:
        "benchmarks/probes/{task}/seed{seed}/C{exp}.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/probe_weights.py"


rule probe_random_inits:
    input:
        weights=lambda wildcards: target_weights(wildcards.task, wildcards.seed),
        graphs=train_inputs,
    output:
        directory("results/probes/{task}/seed{seed}/random"),
    params:
        graphs_dir=GRAPHS_DIR,
        seeds=CONFIG["probes"].get("random_seeds", [0, 1, 2]),
        options=PROBE_OPTIONS,
    resources:
        runtime=120,
        mem_mb=4000,
    log:
        "logs/probes/{task}/seed{seed}/random.log",
    benchmark:
        "benchmarks/probes/{task}/seed{seed}/random.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/probe_random.py"


rule probe_step:
    input:
        steps=lambda wildcards: target_weights(wildcards.task, wildcards.seed),
        graphs=train_inputs,
    output:
        directory("results/probes/{task}/seed{seed}/within/step{step}"),
    params:
        graphs_dir=GRAPHS_DIR,
        options=PROBE_OPTIONS,
    resources:
        runtime=120,
        mem_mb=4000,
    log:
        "logs/probes/{task}/seed{seed}/within/step{step}.log",
    benchmark:
        "benchmarks/probes/{task}/seed{seed}/within/step{step}.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/probe_step.py"


rule collect_probes:
    input:
        across=lambda wildcards: [
            probe_dir(wildcards.task, exp, wildcards.seed)
            for exp in probe_budgets(wildcards.task, wildcards.seed)
        ],
        within=lambda wildcards: [
            f"{probe_root(wildcards.task, wildcards.seed)}/within/step{step}"
            for step in within_steps(wildcards.task, wildcards.seed)
        ],
    output:
        across="results/probes/{task}/seed{seed}/across_compute.csv",
        across_examples="results/probes/{task}/seed{seed}/across_compute_per_example.csv",
        within="results/probes/{task}/seed{seed}/within_run.csv",
    resources:
        runtime=10,
        mem_mb=2000,
    log:
        "logs/probes/{task}/seed{seed}/collect.log",
    benchmark:
        "benchmarks/probes/{task}/seed{seed}/collect.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/collect_probes.py"


rule quiet_loud:
    input:
        across=probe_outputs("results/probes/{task}/seed{seed}/across_compute.csv"),
        across_examples=probe_outputs(
            "results/probes/{task}/seed{seed}/across_compute_per_example.csv"
        ),
        random=probe_outputs("results/probes/{task}/seed{seed}/random"),
        transitions="results/scaling/transitions.csv",
    output:
        verdicts=report(
            "results/probes/quiet_loud.csv",
            caption="../report/quiet_loud_table.rst",
            category="Probes",
            subcategory="Tables",
            labels={"table": "quiet or loud"},
        ),
        per_seed=report(
            "results/probes/quiet_loud_seeds.csv",
            caption="../report/quiet_loud_seeds_table.rst",
            category="Probes",
            subcategory="Tables",
            labels={"table": "quiet or loud per seed"},
        ),
    params:
        task_seeds=[(task, seed) for task in PROBE_TASKS for seed in task_seeds(task)],
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
        across=figure_outputs("results/probes/{task}/seed{seed}/across_compute.csv"),
        within=figure_outputs("results/probes/{task}/seed{seed}/within_run.csv"),
        random=figure_outputs("results/probes/{task}/seed{seed}/random"),
        verdicts="results/probes/quiet_loud.csv",
        frontiers=expand("results/scaling/{task}_frontier.csv", task=PROBE_TASKS),
        transitions="results/scaling/transitions.csv",
        within_records=lambda wildcards: [
            probe_model(task, probe_target(task), task_seeds(task)[0], RUN_RECORD)
            for task in PROBE_TASKS
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
