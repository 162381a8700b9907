"""Student-facing checks used by the check cells of the lessons.

Each check compares a learner's function with the reference implementation in
``helpers`` on fixed and random inputs and raises ``AssertionError`` naming the failed
case, what was expected, what came back, and a hint; all is well when it prints one
``✓`` line. How they fail, succeed and call the learner's code is shared
(:mod:`helpers.checks._common`). One submodule per lesson, in the order of the lessons;
every check is re-exported here by name, so notebooks write ``from helpers import checks``
and ``checks.check_dice(dice_coefficient)``. After an exercise,
``checks.learner_or_reference`` lets the lesson go on with the reference when the blank is
unfinished. The submodules import only NumPy at import
time (Keras and TensorFlow inside the checks that need them).
"""

from __future__ import annotations

from helpers.checks._common import learner_or_reference  # every lesson: no dead ends
from helpers.checks.generator import (  # lesson 01
    check_augment_pair, check_dataset, check_dataset_augments, check_percentile_stretch,
)
from helpers.checks.architecture import (  # lesson 02
    check_conv_block, check_decoder_block, check_encoder_block, check_layers_for, check_max_depth,
    check_noise_verdict, check_residual_block, check_unet, check_unet_3d,
)
from helpers.checks.metrics import (  # lesson 03
    check_bce_dice_loss, check_confusion_metrics, check_dice, check_dice_loss, check_hard_dice, check_iou,
    check_metric_verdicts, check_multiclass_dice, check_precision, check_sensitivity, check_specificity,
)
from helpers.checks.training import (  # lesson 04
    check_best_epoch, check_callbacks, check_compile, check_monitor, check_split_by_patient, check_train_step,
    check_training_run,
)
from helpers.checks.prediction import (  # lesson 05
    check_choose_threshold, check_fill_holes, check_keep_largest_components, check_metrics_table, check_postprocess,
    check_threshold,
    check_postprocessing_choice, check_tta_choice, best_postprocessing_choice, best_tta_choice,
)
from helpers.checks.lung_ct import (  # lesson 06
    check_blending_weights, check_foreground_patch_start, check_lung_model, check_lung_volume, check_resampled_grid,
    check_residual_blocks, check_save_prediction, check_volumetric_dice, check_window_hu, check_window_starts,
    check_working_spacing, check_predict_volume,
)
from helpers.checks.liver_ct import (  # lesson 07
    check_empty_fraction_choice, check_flip_augmentation, check_kfold, check_predict_liver_volume, check_select_slices,
    check_volume_to_slices,
)
from helpers.checks.brain import (  # lesson 08
    best_loss_choice, check_cce_dice_loss, check_loss_choice, check_one_hot, check_per_class_scores, check_region_dice,
    check_remap_labels, check_weighted_cce_dice_loss,
)

__all__ = [
    # every lesson: the learner's version when it works, else the reference
    "learner_or_reference",
    # 01 data generator
    "check_percentile_stretch", "check_dataset", "check_augment_pair", "check_dataset_augments",
    # 02 architecture
    "check_conv_block", "check_encoder_block", "check_decoder_block", "check_unet", "check_layers_for",
    "check_unet_3d",
    "check_max_depth", "check_residual_block", "check_noise_verdict",
    # 03 loss and metrics
    "check_dice", "check_hard_dice", "check_dice_loss", "check_iou", "check_bce_dice_loss",
    "check_confusion_metrics", "check_sensitivity", "check_specificity", "check_precision",
    "check_multiclass_dice", "check_metric_verdicts",
    # 04 training
    "check_split_by_patient", "check_callbacks", "check_compile", "check_training_run", "check_monitor",
    "check_best_epoch",
    "check_train_step",
    # 05 prediction
    "check_threshold", "check_metrics_table", "check_keep_largest_components", "check_fill_holes",
    "check_postprocess", "check_choose_threshold",
    "check_postprocessing_choice", "check_tta_choice", "best_postprocessing_choice", "best_tta_choice",
    # 06 lung CT 3D
    "check_window_hu", "check_lung_volume", "check_volumetric_dice", "check_lung_model", "check_save_prediction",
    "check_resampled_grid", "check_foreground_patch_start", "check_window_starts", "check_blending_weights",
    "check_residual_blocks", "check_working_spacing", "check_predict_volume",
    # 07 liver CT
    "check_select_slices", "check_volume_to_slices", "check_flip_augmentation", "check_kfold",
    "check_empty_fraction_choice", "check_predict_liver_volume",
    # 08 brain tumour
    "check_remap_labels", "check_one_hot", "check_cce_dice_loss", "check_weighted_cce_dice_loss", "check_loss_choice",
    "best_loss_choice",
    "check_region_dice", "check_per_class_scores",
]
