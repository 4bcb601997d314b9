"""qlf: from a config file to the figures of "Quiet Feature Learning in Algorithmic Tasks".

    snakemake --cores 8 results/plots/scaling_law.pdf            # config/config.yaml
    snakemake --cores 2 --configfile config/smoke.yaml           # every rule in minutes
    snakemake --profile slurm                                    # config/paper.yaml on SLURM

The rules say what depends on what; the qlf library does the work.
"""
from snakemake.utils import min_version

min_version("9.0")

# A --configfile given on the command line replaces the default instead of being merged into it
# (merging would keep the default's task entries under the other config's).
if not config:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/graphs.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/scaling.smk"
include: "workflow/rules/probes.smk"
include: "workflow/rules/ablations.smk"
include: "workflow/rules/comparison.smk"
include: "workflow/rules/monitor.smk"


rule all:
    input:
        all_targets(),
    default_target: True
