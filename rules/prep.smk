rule prep:
    output:
        tensors="results/data/{dataset}/tensors.pt",
        manifest="results/data/{dataset}/manifest.json",
    params:
        data=dataset_spec_json,
    log:
        "logs/prep/{dataset}.log",
    cache: "omit-software"
    conda:
        "../environment.yml"
    script:
        "../workflow_scripts/prep.py"
