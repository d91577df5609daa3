"""Recommendations: candidate generators behind one :class:`Recommender` interface,
a LightGBM ranker that merges them, training (:func:`train_models`: fit and save a
version) and serving (:class:`RecommendService`: load and answer), kept apart."""

from shopsense.recommend._base import Interactions, Recommender, histories_to_csr, top_k
from shopsense.recommend._cf import ALS, EASE, ItemKNN
from shopsense.recommend._content import ContentRecommender
from shopsense.recommend._popularity import Popularity, Trending
from shopsense.recommend._ranker import ItemSide, RankingStack
from shopsense.recommend._sasrec import SASRec
from shopsense.recommend._service import RecommendService
from shopsense.recommend._training import train_models

__all__ = ["ALS", "EASE", "ContentRecommender", "Interactions", "ItemKNN", "ItemSide", "Popularity", "RankingStack",
           "RecommendService", "Recommender", "SASRec", "Trending", "histories_to_csr", "top_k", "train_models"]
