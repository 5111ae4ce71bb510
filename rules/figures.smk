from types import SimpleNamespace

from pathgeo.analysis.report import figure_title


rule vega_bundle:
    input:
        library=library("analysis/figures/save.py"),
    output:
        "results/vega/vega-embed.js",
    log:
        "logs/vega_bundle.log",
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/vega_bundle.py"


# The report's captions, where report/figure.rst reads them (snakemake.config): as a rule's params, each would show a
# second time, escaped, under the report's "Job parameters".
config["report_captions"] = {name: figure_caption(SimpleNamespace(name=name)) for name in config["figures"]}


rule figure:
    input:
        unpack(figure_tables),
        bundle="results/vega/vega-embed.js",
        library=figure_library,
    output:
        html=report(
            f"{OUTPUTS}/figures/{{name}}.html",
            caption="../report/figure.rst",
            category=figure_category,
            subcategory=lambda wildcards: figure_title(wildcards.name),
            labels=lambda wildcards: {"figure": figure_title(wildcards.name), "view": "interactive (HTML)"},
        ),
        image=report(
            f"{OUTPUTS}/figures/{{name}}.svg",
            caption="../report/figure.rst",
            category=figure_category,
            subcategory=lambda wildcards: figure_title(wildcards.name),
            labels=lambda wildcards: {"figure": figure_title(wildcards.name), "view": "static (SVG)"},
        ),
    log:
        f"{LOGS}/figures/{{name}}.log",
    conda:
        "../environment.yml"
    params:
        figure=lambda wildcards: config["figures"][wildcards.name],
    script:
        "../workflow_scripts/figure.py"


rule landscape:
    input:
        unpack(run_data),
        checkpoints="results/runs/{run}/checkpoints",
        library=library("jobs/landscape.py"),
    output:
        "results/runs/{run}/landscape.parquet",
    log:
        "logs/landscape/{run}.log",
    conda:
        "../environment.yml"
    threads: config["threads"]
    resources:
        gpu=one_gpu,
        nodes=1,
        cpus_per_gpu=config["threads"],
        mem_mb=reference_mem_mb,
        runtime=landscape_runtime,
    params:
        spec=run_spec_json,
        device=config["device"],
        data_root=DATA_ROOT,
        deterministic=config["deterministic"],
    script:
        "../workflow_scripts/landscape.py"


for figure_name in config["figures"]:

    rule:
        name:
            f"figure_{figure_name}"
        input:
            f"{OUTPUTS}/figures/{figure_name}.html",
            f"{OUTPUTS}/figures/{figure_name}.svg",
