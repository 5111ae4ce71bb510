# pathgeo: the geometry of optimization paths, from dataset to figures.
#   snakemake --cores all                          the whole DAG on config/config.yaml
#   snakemake --cores all figure_gamma_by_seed     one figure and only what it needs
#   snakemake -n | --dag | --rulegraph             inspect the plan
#   snakemake --report report.zip                  the figures and the claims table with their captions


from pathgeo.config_files import ConfigFileError, check_config_files

# Snakemake's reading of a config file names no line for a syntax error and keeps the last of two equal
# keys without a word; read each one strictly first. (A --configfile with a syntax error is read by
# Snakemake's command line before this runs: `python -m pathgeo.config_files FILE` names its line.)
try:
    check_config_files(workflow.overwrite_configfiles or ["config/config.yaml"])
except ConfigFileError as error:
    raise WorkflowError(str(error)) from None


# A --configfile (a preset, a test's config) is complete in itself: it replaces the embedded default
# rather than being merged into it, so its experiments are the only ones planned.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/prep.smk"
include: "rules/reference.smk"
include: "rules/replay.smk"
include: "rules/aggregate.smk"
include: "rules/figures.smk"


onstart:
    watch_preemption()


localrules:
    all,
    aggregate,
    claims,
    zigzag,
    figure,
    vega_bundle,


# Every experiment's tables are outputs of their own (README), not only inputs of figures: a table deleted by hand
# is built again even where no figure reads it, or the figures that read it are older.
rule all:
    input:
        all_figures(),
        expand(rules.aggregate.output, experiment=list(PLAN.experiments)),
        "results/tables/claims.csv",
        "results/tables/claims.parquet",
        rules.zigzag.output,
    default_target: True
