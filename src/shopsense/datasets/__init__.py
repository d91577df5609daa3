"""Reading data: the readers of a shop's files and the loaders of the public datasets in
``../shared/datasets`` and the bundled demo files. Everything else (``shopsense eval``,
the benchmarks) reads data through this package: one reader per format.

The readers (:func:`read_sequences`, :func:`read_events`, :func:`read_items`,
:func:`read_baskets`, :func:`load_judgments`) raise
:class:`~shopsense.errors.ValidationError` naming the file, line and column of a
malformed row and count what they skip (:class:`Skips`). The loaders build on them and
return the engine's own schema (:class:`~shopsense.catalog.Product`,
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
from shopsense.datasets._arrays import Baskets, Sequences
from shopsense.datasets._basket_files import (
    BasketData,
    basket_format,
    basket_lines,
    read_basket_file,
    read_baskets,
)
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
from shopsense.datasets._judgments import (
    JUDGMENT_FIELDS,
    JudgedQueries,
    Judgments,
    load_judgments,
    read_judgments,
)
from shopsense.datasets._paths import (
    DatasetNotFoundError,
    dataset_file,
    datasets_root,
    demo_dir,
    demo_paths,
    repo_root,
)
from shopsense.datasets._readers import (
    PRODUCT_ALIASES,
    ItemData,
    SequenceData,
    Skips,
    lookup_item,
    product_mapping,
    read_events,
    read_items,
    read_sequences,
    sequence_format,
)
from shopsense.datasets._search import (
    crowdflower_id,
    load_crowdflower_judgments,
    load_crowdflower_products,
    load_homedepot_judgments,
    load_homedepot_products,
)

__all__ = [
    "JUDGMENT_FIELDS", "PRODUCT_ALIASES", "SEQUENCE_EPOCH", "SERVICE_CODES", "BasketData", "Baskets",
    "DatasetNotFoundError", "ItemData", "JudgedQueries", "Judgments", "SequenceData", "Sequences", "Skips",
    "basket_format", "basket_lines", "crowdflower_id", "dataset_file", "datasets_root", "demo_dir", "demo_paths",
    "export_events", "export_products", "icecat_raw", "iter_amazon_events", "load_amazon_sequences",
    "load_crowdflower_judgments", "load_crowdflower_products", "load_groceries_baskets",
    "load_groceries_products", "load_homedepot_judgments", "load_homedepot_products",
    "load_icecat_products", "load_judgments", "load_office_events", "load_office_products",
    "load_office_sequences", "load_online_retail_baskets", "load_online_retail_events",
    "load_online_retail_products", "lookup_item", "office_item_id", "office_user_id", "product_mapping",
    "read_basket_file", "read_baskets", "read_events", "read_items", "read_judgments", "read_sequences",
    "repo_root", "sequence_format",
]
