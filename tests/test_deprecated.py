"""Names that changed so each word has one meaning: the old ones still work for a release, and warn."""

from __future__ import annotations

import numpy as np
import pytest

from cbwidgets import Codebook
from cbwidgets.index import CodeIndex
from cbwidgets.names import CodebookNames
from tests.tiny import tiny_model


def test_old_names_warn_and_give_what_they_gave() -> None:
    cb = Codebook(8, 4)
    with pytest.warns(DeprecationWarning, match="Codebook.vectors"):
        assert cb.codes is cb.vectors
    names = tiny_model("gpt2", num_codes=16).names
    with pytest.warns(DeprecationWarning, match="codebooks"):
        assert names.units == names.codebooks
    with pytest.warns(DeprecationWarning, match="index_of"):
        assert names.resolve("1.mlp") == names.index_of("1.mlp")
    stored = np.array([[[1]], [[np.iinfo(np.uint16).max]]], dtype=np.uint16)
    index = CodeIndex(stored, np.array([0, 1], dtype=np.int32), np.array([0, 2]), ["a", "b"],
                      CodebookNames.from_labels(["0.mlp"], num_codes=[4]))  # fmt: skip
    with pytest.warns(DeprecationWarning, match="ids"):
        assert index.codes is stored
    with pytest.warns(DeprecationWarning, match="-1"):
        assert index.empty == np.iinfo(np.uint16).max
    assert index.ids().tolist() == [[[1]], [[-1]]]  # the one empty marker


def test_renamed_recipe_and_result_types() -> None:
    import cbwidgets.stories
    import cbwidgets.tokfsm
    from cbwidgets.recipe import TrainedModel
    from cbwidgets.tokfsm import FSMRecipe

    with pytest.warns(DeprecationWarning, match="FSMRecipe"):
        assert cbwidgets.tokfsm.Recipe is FSMRecipe
    with pytest.warns(DeprecationWarning, match="TrainedModel"):
        assert cbwidgets.stories.TrainedStoryteller is TrainedModel


def test_code_search_rows_were_called_codes() -> None:
    from cbwidgets.widgets import CodeSearch

    stored = np.array([[[1]], [[2]]], dtype=np.uint16)
    index = CodeIndex(stored, np.array([0, 1], dtype=np.int32), np.array([0, 2]), ["a", "b"],
                      CodebookNames.from_labels(["0.mlp"], num_codes=[4]))  # fmt: skip
    search = CodeSearch(index, "a")
    with pytest.warns(DeprecationWarning, match="code_names"):
        assert search.codes == search.code_names == ["0.mlp.1"]
