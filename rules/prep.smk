rule prep:
    output:
        tensors="results/data/{dataset}/tensors.pt",
        manifest="results/data/{dataset}/manifest.json",
    log:
        "logs/prep/{dataset}.log",
    wildcard_constraints:
        dataset=one_of(GENERATED),
    cache: "omit-software"
    conda:
        "../environment.yml"
    params:
        data=dataset_spec_json,
        code=preparation_version(),
    script:
        "../workflow_scripts/prep.py"


rule fingerprint:
    output:
        manifest="results/data/{dataset}/manifest.json",
    log:
        "logs/prep/{dataset}.log",
    wildcard_constraints:
        dataset=one_of(EXTERNAL),
    conda:
        "../environment.yml"
    params:
        data=dataset_spec_json,
        data_root=DATA_ROOT,
        code=preparation_version(),
    script:
        "../workflow_scripts/fingerprint.py"
