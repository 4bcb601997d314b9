# Ablations: at each training seed's target-budget model, project the residual stream onto each
# probed feature's decision boundary (the k best layers per row, k = 1..n_layers) and compare
# accuracy and loss with two seeded random controls (matched displacement, and the reference's
# random unit directions keeping the probe's offset; controls at k = 1 by default).


rule ablate_feature:
    input:
        weights=lambda wildcards: target_weights(wildcards.task, wildcards.seed),
        probes=lambda wildcards: probe_dir(
            wildcards.task, probe_target(wildcards.task), wildcards.seed
        ),
        graphs=train_inputs,
    output:
        "results/ablations/{task}/seed{seed}/{feature}.json",
    params:
        graphs_dir=GRAPHS_DIR,
        top_k=ABLATIONS.get("top_k", "all"),
        control_top_k=ABLATIONS.get("control_top_k", [1]),
        n_random=ABLATIONS.get("n_random", 32),
        n_boot=ABLATIONS.get("n_boot", 1000),
        seed=SEEDS[0],
        train_seed=lambda wildcards: int(wildcards.seed),
    resources:
        runtime=120,
        mem_mb=4000,
    log:
        "logs/ablations/{task}/seed{seed}/{feature}.log",
    benchmark:
        "benchmarks/ablations/{task}/seed{seed}/{feature}.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/ablate_feature.py"


rule ablation_summary:
    input:
        [
            f"results/ablations/{task}/seed{seed}/{feature}.json"
            for task in PROBE_TASKS
            for seed in task_seeds(task)
            for feature in ablation_features(task)
        ],
    output:
        table=report(
            "results/ablations/summary.csv",
            caption="../report/ablations_table.rst",
            category="Ablations",
            subcategory="Tables",
            labels={"table": "ablation summary"},
        ),
        targets=report(
            "results/ablations/targets.csv",
            caption="../report/ablations_targets.rst",
            category="Ablations",
            subcategory="Tables",
            labels={"table": "ablation targets"},
        ),
        across_seeds=report(
            "results/ablations/across_seeds.csv",
            caption="../report/ablations_across_seeds.rst",
            category="Ablations",
            subcategory="Tables",
            labels={"table": "ablations across training seeds"},
        ),
        pdf=report(
            "results/plots/ablations.pdf",
            caption="../report/ablations.rst",
            category="Ablations",
            subcategory="Figures",
            labels={"figure": "ablations"},
        ),
    resources:
        runtime=10,
        mem_mb=2000,
    log:
        "logs/ablations/summary.log",
    benchmark:
        "benchmarks/ablations/summary.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/ablation_summary.py"
