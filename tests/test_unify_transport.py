"""Boolean mappings by unbalanced OT: at most one label per unified node, every label covered."""

import numpy as np

from babelseg.unify.transport import NO_LABEL, boolean_mapping, mapping_matrix


def test_peaked_rows_map_and_an_indifferent_row_maps_to_nothing():
    adjacency = np.array(
        [
            [0.90, 0.05, 0.05],
            [0.85, 0.10, 0.05],  # a second child of label 0 (granularity)
            [0.10, 0.80, 0.10],
            [1 / 3, 1 / 3, 1 / 3],  # no preference: unlabelled in this dataset
            [0.05, 0.10, 0.85],
        ]
    )
    assign = boolean_mapping(adjacency)
    assert assign.tolist() == [0, 0, 1, NO_LABEL, 2]
    m = mapping_matrix(assign, 3)
    assert (m.sum(1) <= 1).all() and (m.sum(0) >= 1).all()
    assert m.tolist() == [
        [True, False, False],
        [True, False, False],
        [False, True, False],
        [False, False, False],
        [False, False, True],
    ]


def test_a_label_nobody_prefers_takes_a_spare_child_of_another_label():
    adjacency = np.array([[0.9, 0.05, 0.05], [0.8, 0.05, 0.15], [0.05, 0.9, 0.05]])
    # rows 0 and 1 both go to label 0; label 2 is left empty and takes row 1 (0.15 > 0.05),
    # while label 0 keeps row 0
    assert boolean_mapping(adjacency).tolist() == [0, 2, 1]


def test_inactive_nodes_never_map():
    adjacency = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1]])
    assign = boolean_mapping(adjacency, active=np.array([True, True, False]))
    assert assign.tolist() == [0, 1, NO_LABEL]
