# geng -> a uniform, seeded sample of the connected graphs on n nodes (only for graph tasks).
# A checkpoint: a graph task whose ctx is not pinned is planned from this file.


checkpoint graphs:
    output:
        f"{GRAPHS_DIR}/graph{{n}}c.g6",
    params:
        keep=lambda wildcards: CONFIG["graphs"]["keep"][int(wildcards.n)],
        seed=CONFIG["seed"],
    threads: 8
    resources:
        runtime=120,
        mem_mb=1000,
    log:
        "logs/graphs/graph{n}c.log",
    benchmark:
        "benchmarks/graphs/graph{n}c.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/graphs.py"
