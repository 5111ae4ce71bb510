"""Column names shared by the stages. Torch-free, so aggregation and figures import it cheaply."""

# The lags k of the orthogonal-component correlation cos(G⊥_{t−k}, G⊥_t) (the first paper's code).
LAGS = (1, 2, 5, 10, 20, 50)

# Per-step measurements written by the replay (and aggregated per epoch).
METRICS = (
    "lr",
    "loss",
    "rsi",
    "eb",
    "gamma",
    "lolr",
    "grad_norm",
    "dist",
    "rsi_wd",
    "eb_wd",
    "gamma_wd",
    "lolr_wd",
    "grad_norm_wd",
    "upd_norm",
    "upd_rsi",
    "upd_gamma",
    "grad_corr",
    "mean_grad_corr",
    "sign_flip",
    *(f"perp_corr_lag{k}" for k in LAGS),
)

# A run's factors: the columns figures facet and colour by (RunSpec.factors()).
FACTORS = ("dataset", "model", "width", "optimizer", "peak_lr", "batch_size", "seed", "weight_decay", "schedule",
           "warmup_epochs", "full_batch", "epochs", "precision", "devices")
