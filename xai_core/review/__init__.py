"""Review jobs: every analysis over a whole dataset, stored shard by shard in a folder, reopened without recomputing.

    from xai_core.review import ReviewSettings, run_review, load_review
    review = run_review(model, data, "reviews/wine", ReviewSettings(analyses=("shap", "surrogate")))
    review.shap.global_importance()            # the same TabularAttribution the Feature importance page shows
    load_review("reviews/wine").evaluation.score
"""

from xai_core.review.job import ANALYSES, ModelSource, ReviewSettings, data_sha256, run_review, surrogate_rows
from xai_core.review.store import ImageReview, Review, load_review

__all__ = ["ANALYSES", "ImageReview", "ModelSource", "Review", "ReviewSettings", "data_sha256", "load_review",
           "run_review", "surrogate_rows"]
