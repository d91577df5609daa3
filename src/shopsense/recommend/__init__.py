"""Recommendations: candidate generators behind one :class:`Recommender` interface,
a LightGBM ranker that merges them, training (:func:`train_models`: fit, precompute
each user's candidate list and an item-neighbour table, save a version) and serving
(:class:`RecommendService`: load memory-mapped and answer from the lists, folding
fresh events in over the neighbours), kept apart."""

from shopsense.recommend._base import Interactions, Recommender, histories_to_csr, top_k
from shopsense.recommend._cf import ALS, EASE, ItemKNN
from shopsense.recommend._content import ContentRecommender
from shopsense.recommend._popularity import Popularity, Trending
from shopsense.recommend._ranker import ItemSide, RankingStack
from shopsense.recommend._sasrec import SASRec
from shopsense.recommend._service import RecommendService
from shopsense.recommend._training import train_models
from shopsense.recommend._transition import Transition, tune_transition

__all__ = ["ALS", "EASE", "ContentRecommender", "Interactions", "ItemKNN", "ItemSide", "Popularity", "RankingStack",
           "RecommendService", "Recommender", "SASRec", "Transition", "Trending", "histories_to_csr", "top_k",
           "train_models", "tune_transition"]
