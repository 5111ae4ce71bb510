"""Column names shared by the stages. Torch-free, so aggregation and figures import it cheaply."""

# The lags k of the orthogonal-component correlation cos(G⊥_{t−k}, G⊥_t) (the first paper's code).
LAGS = (1, 2, 5, 10, 20, 50)
# The first paper's code measures them from a base step every ANCHOR_PERIOD steps (pathgeo.engine.record).
ANCHOR_PERIOD = 51
LAG_PROTOCOLS = ("anchored", "every_step", "off")

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
    *(f"dist_lag{k}" for k in LAGS),
)

# The geometry of one gradient at one point (pathgeo.measurements.point_geometry: the full-batch gradient, a fixed
# minibatch's), per reference point.
POINT_METRICS = (
    "loss",
    "grad_norm",
    "dist",
    "rsi",
    "eb",
    "gamma",
    "lolr",
    "grad_norm_wd",
    "rsi_wd",
    "eb_wd",
    "gamma_wd",
    "lolr_wd",
)

# The per-step measurements that need no reference point: reference training takes them itself.
W_STAR_FREE = ("lr", "loss", "grad_norm", "grad_corr", "mean_grad_corr", "sign_flip")

# A run's factors: every field an experiment can vary, the columns figures facet and colour by (RunSpec.factors()).
FACTORS = (
    "dataset",
    "model",
    "width",
    "optimizer",
    "peak_lr",
    "batch_size",
    "seed",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "full_batch",
    "epochs",
    "precision",
    "devices",
    "data_order_seed",
    "grad_clip",
    "warmup_growth",
    "gawu_window",
    "sync_batchnorm",
    "model_options",
    "optimizer_options",
)
