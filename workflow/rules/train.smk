# One job per sweep: all learning rates and seeds (training.fuse) of one (task, size, budget,
# model shape, batch size), trained as one stacked model; its outputs are its members' records
# at the per-run paths, so `snakemake <record> --force` reruns that record's sweep. One rule per
# task (train_<task>), because a task's learning rates are written into its output paths.
# params hold exactly the sweep's specs, so Snakemake reruns a job only when its own runs change;
# finished members' records are kept outside the outputs and reused when the sweep grows.

for _task in TASK_NAMES:

    rule:
        name:
            f"train_{_task}"
        wildcard_constraints:
            task=_task,
        input:
            train_inputs,
        output:
            sweep_outputs(_task),
        params:
            sweep=lambda wildcards: sweep_of(wildcards).to_dict(),
            run_dir=sweep_checkpoints,
            keep_dir=kept_records,
            graphs_dir=GRAPHS_DIR,
        threads: 1
        resources:
            runtime=sweep_runtime,
            mem_mb=sweep_mem_mb,
            gpu_slots=1,  # `--resources gpu_slots=N`: at most N training jobs share a local GPU
            **({"gpu": RESOURCES["gpus_per_run"]} if RESOURCES.get("gpus_per_run") else {}),
        log:
            f"logs/train/{{task}}/n{{size}}/C{{exp}}/{sweep_id_pattern(_task)}.log",
        benchmark:
            f"benchmarks/train/{{task}}/n{{size}}/C{{exp}}/{sweep_id_pattern(_task)}.tsv"
        conda:
            "../../envs/qlf.yaml"
        script:
            "../scripts/train.py"
