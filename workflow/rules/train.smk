# One job per training run of the grid: a RunSpec in, one JSON record out.
# params hold exactly the run's spec, so Snakemake reruns a job only when its own run changes.
# Resume checkpoints live outside the declared outputs, so a killed job continues where it was.


rule train:
    input:
        train_inputs,
    output:
        RUN_RECORD,
    params:
        spec=lambda wildcards: run_spec(wildcards).to_dict(),
        run_dir=lambda wildcards: RUN_CHECKPOINTS.format(**wildcards),
        graphs_dir=GRAPHS_DIR,
    threads: 1
    resources:
        runtime=train_runtime,
        mem_mb=train_mem_mb,
        **({"gpu": RESOURCES["gpus_per_run"]} if RESOURCES.get("gpus_per_run") else {}),
    log:
        "logs/train/{task}/n{size}/C{exp}/{run_id}.log",
    benchmark:
        "benchmarks/train/{task}/n{size}/C{exp}/{run_id}.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/train.py"
