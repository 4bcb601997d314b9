# geng -> a uniform, seeded sample of one class of graphs on n nodes (only for graph tasks):
# graph{n}c.g6 connected, perfect{n}.g6 perfect, planar{n}c.g6 connected planar,
# eulerian{n}c.g6 connected Eulerian (qlf.graphs.GRAPH_CLASSES; each task names its class).
# A checkpoint: a graph task whose ctx is not pinned is planned from its file.


checkpoint graphs:
    output:
        f"{GRAPHS_DIR}/{{graph_file}}.g6",
    wildcard_constraints:
        graph_file=GRAPH_FILE_PATTERN,
    params:
        graph_class=lambda wildcards: qlf.graphs.parse_graph_file_name(wildcards.graph_file)[0],
        n=lambda wildcards: qlf.graphs.parse_graph_file_name(wildcards.graph_file)[1],
        keep=lambda wildcards: CONFIG["graphs"]["keep"][
            qlf.graphs.parse_graph_file_name(wildcards.graph_file)[1]],
        seed=SEEDS[0],  # the first data seed seeds the graph sample
    threads: 8
    resources:
        runtime=120,
        mem_mb=1000,
    log:
        "logs/graphs/{graph_file}.log",
    benchmark:
        "benchmarks/graphs/{graph_file}.tsv"
    conda:
        "../../envs/qlf.yaml"
    script:
        "../scripts/graphs.py"
