"""Loaders for the public datasets in ``../shared/datasets`` and the bundled demo files.

Every loader returns the engine's own schema (:class:`~shopsense.catalog.Product`,
:class:`~shopsense.catalog.Event`) or a small array dataclass (:class:`Judgments`,
:class:`Sequences`, :class:`Baskets`), so benchmarks and the demo take the same path
as a shop's own data. The root is ``$SHOPSENSE_DATASETS``, else
``<repo>/../shared/datasets``; a missing folder raises :class:`DatasetNotFoundError`.
"""

from __future__ import annotations

from shopsense.datasets._amazon import (
    SEQUENCE_EPOCH,
    iter_amazon_events,
    load_amazon_sequences,
    load_office_events,
    load_office_products,
    load_office_sequences,
    office_item_id,
    office_user_id,
)
from shopsense.datasets._arrays import Baskets, Judgments, Sequences
from shopsense.datasets._baskets import (
    SERVICE_CODES,
    load_groceries_baskets,
    load_groceries_products,
    load_online_retail_baskets,
    load_online_retail_events,
    load_online_retail_products,
)
from shopsense.datasets._export import export_events, export_products
from shopsense.datasets._icecat import icecat_raw, load_icecat_products
from shopsense.datasets._paths import (
    DatasetNotFoundError,
    dataset_file,
    datasets_root,
    demo_dir,
    demo_paths,
    repo_root,
)
from shopsense.datasets._search import (
    crowdflower_id,
    load_crowdflower_judgments,
    load_crowdflower_products,
    load_homedepot_judgments,
    load_homedepot_products,
)

__all__ = [
    "SEQUENCE_EPOCH", "SERVICE_CODES", "Baskets", "DatasetNotFoundError", "Judgments", "Sequences",
    "crowdflower_id", "dataset_file", "datasets_root", "demo_dir", "demo_paths", "export_events",
    "export_products", "icecat_raw", "iter_amazon_events", "load_amazon_sequences",
    "load_crowdflower_judgments", "load_crowdflower_products", "load_groceries_baskets",
    "load_groceries_products", "load_homedepot_judgments", "load_homedepot_products",
    "load_icecat_products", "load_office_events", "load_office_products", "load_office_sequences",
    "load_online_retail_baskets", "load_online_retail_events", "load_online_retail_products",
    "office_item_id", "office_user_id", "repo_root",
]
