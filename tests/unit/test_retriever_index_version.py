"""The index version's parts: the id digest, its format, and the per-collection cache."""

from __future__ import annotations

import re
import time
import uuid

from trivium.retriever.indexing.documents import IndexRecipe
from trivium.retriever.indexing.versions import DigestCache, id_digest, index_version

RECIPE = IndexRecipe(embedding_model="m", max_chars=1000, overlap_chars=150, bm25="0.9:0.4")
IDS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"chunk-{i}")) for i in range(50)]


def test_the_digest_ignores_order_and_undoes_itself() -> None:
    assert id_digest(IDS) == id_digest(reversed(IDS))
    assert id_digest([]) == 0
    digest = id_digest(IDS[:10])
    assert digest ^ id_digest(IDS[10:20]) == id_digest(IDS[:20])
    assert digest ^ id_digest(IDS[5:10]) == id_digest(IDS[:5])
    assert len({id_digest(IDS[:n]) >> 80 for n in range(len(IDS) + 1)}) == len(IDS) + 1


def test_the_version_names_recipe_and_content() -> None:
    version = index_version(RECIPE, id_digest(IDS))
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{12}", version)
    assert version == index_version(RECIPE, id_digest(sorted(IDS)))
    assert index_version(RECIPE, 0).endswith("-000000000000")
    other = IndexRecipe(embedding_model="m", max_chars=1000, overlap_chars=100, bm25="0.9:0.4")
    assert index_version(other, 0)[:8] != index_version(RECIPE, 0)[:8]
    assert index_version(RECIPE, id_digest(IDS[1:])) != version


def test_the_cache_follows_writes_and_ages() -> None:
    cache = DigestCache()
    assert cache.fresh("kb") is None
    cache.apply("kb", [], IDS)  # not counted yet: nothing to follow
    assert cache.fresh("kb") is None
    cache.put("kb", id_digest(IDS[:10]))
    # a replaced document: its old ids before, its new ones (and a kept one) after
    cache.apply("kb", IDS[5:10], [IDS[5], *IDS[10:15]])
    assert cache.fresh("kb") == id_digest([*IDS[:6], *IDS[10:15]])
    cache.forget("kb")
    assert cache.fresh("kb") is None

    ageing = DigestCache(max_age_s=0.01)
    ageing.put("kb", 7)
    assert ageing.fresh("kb") == 7
    time.sleep(0.02)
    assert ageing.fresh("kb") is None
