# Ablations: at the target budget's compute-optimal model, project the residual stream onto each
# probed feature's decision boundary (best layer per position) and compare accuracy and loss with
# seeded random-direction controls of matched displacement.


rule ablate_feature:
    input:
        weights=lambda wildcards: target_weights(wildcards.task),
        probes=lambda wildcards: probe_dir(wildcards.task, probe_target(wildcards.task)),
        graphs=train_inputs,
    output:
        "results/ablations/{task}/{feature}.json",
    params:
        graphs_dir=GRAPHS_DIR,
        top_k=ABLATIONS.get("top_k", 1),
        n_random=ABLATIONS.get("n_random", 32),
        n_boot=ABLATIONS.get("n_boot", 1000),
        seed=SEEDS[0],
    resources:
        runtime=120,
        mem_mb=4000,
    log:
        "logs/ablations/{task}/{feature}.log",
    benchmark:
        "benchmarks/ablations/{task}/{feature}.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/ablate_feature.py"


rule ablation_summary:
    input:
        [
            f"results/ablations/{task}/{feature}.json"
            for task in PROBE_TASKS
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
