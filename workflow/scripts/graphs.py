"""Snakemake script: a uniform sample of one class of graphs on n nodes (qlf.graphs)."""
import sys

from qlf.graphs import make_graph_file

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)
summary = make_graph_file(snakemake.params.n, snakemake.output[0], keep=snakemake.params.keep,
                          seed=snakemake.params.seed, jobs=snakemake.threads,
                          graph_class_name=snakemake.params.graph_class)
print(summary)
