"""transformers' own common suites (model, config, image processor) run against the CSKD classes.

The suites come from the installed transformers version's sdist (see `tests/transformers_suites.py`); every skip
below carries the reason it does not apply to a vision model without attention outputs or token embeddings, and every
override says what it asserts instead.
"""

import os
import tempfile
import unittest

import pytest
import torch
from transformers.models.auto import modeling_auto
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging

from cskd_hf import CSKDConfig, CSKDForAestheticScoring, CSKDForFeatureAlignment, CSKDImageProcessor, CSKDModel
from tests.transformers_suites import PYTEST_CONFIG, import_suite

try:
    modeling_common = import_suite("test_modeling_common", config=PYTEST_CONFIG[0])
    configuration_common = import_suite("test_configuration_common")
    image_processing_common = import_suite("test_image_processing_common")
except RuntimeError as error:  # no registry: a failure in CI, a skip on an offline laptop
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise
    pytest.skip(f"transformers' common suites are not available: {error}", allow_module_level=True)

ModelTesterMixin = modeling_common.ModelTesterMixin
floats_tensor = modeling_common.floats_tensor
ConfigTester = configuration_common.ConfigTester
ImageProcessingTestMixin = image_processing_common.ImageProcessingTestMixin
ImageProcessingTester = image_processing_common.ImageProcessingTester


@pytest.fixture(scope="module", autouse=True)
def listed_in_the_static_auto_tables():
    """The suites choose their classification-only tests (problem types, mismatched heads, training) by the model
    names in transformers' static tables, where a library's own models are listed. Ours reach the Auto classes by
    registration, which fills the lazy mappings only: list them in the tables, as a user of the Auto classes finds
    them, for this module alone. Only the model-name tables: without `cskd` in the config table, the lazy mappings
    never look a model up there."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(modeling_auto.MODEL_MAPPING_NAMES, "cskd", "CSKDModel")
        patch.setitem(modeling_auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES, "cskd", "CSKDForAestheticScoring")
        yield


IMAGE_SIZE = 32
PROJECTION_DIM = 24
# Stage outputs of timm's tiny test architectures at a 32 px input, past the batch dimension: the ResNet's feature maps
# (channels, height, width) and the ViT's two blocks (tokens: a class token and 2x2 patches, width).
HIDDEN_STATE_SHAPES = {
    "test_resnet": [[32, 16, 16], [32, 8, 8], [48, 4, 4], [192, 2, 2], [96, 1, 1]],
    "test_vit": [[5, 64]] * 2,
}
MODEL_ARGS = {"test_resnet": {}, "test_vit": {"depth": 2}}


class CSKDModelTester:
    def __init__(self, parent, architecture: str, batch_size: int = 3, is_training: bool = True):
        self.parent = parent
        self.architecture = architecture
        self.batch_size = batch_size
        self.is_training = is_training
        self.image_size = IMAGE_SIZE
        self.num_channels = 3
        self.num_bins = 10

    def get_config(self) -> CSKDConfig:
        return CSKDConfig(
            architecture=self.architecture,
            model_args=MODEL_ARGS[self.architecture],
            image_size=self.image_size,
            num_bins=self.num_bins,
            head_hidden_sizes=[16],
            head_dropout=0.1,
            projection_dim=PROJECTION_DIM,
        )

    def prepare_config_and_inputs_for_common(self):
        pixel_values = floats_tensor([self.batch_size, self.num_channels, self.image_size, self.image_size])
        # Kept: some tests change the config they are given (`test_problem_types` sets its problem type and
        # `num_labels`), and the labels must follow it.
        self.config = self.get_config()
        return self.config, {"pixel_values": pixel_values}

    def scoring_labels(self) -> torch.Tensor:
        """Labels of the form the config's `problem_type` names; the same on every call (tests compare losses)."""
        generator = torch.Generator().manual_seed(0)
        config = self.config
        if config.problem_type == "single_label_classification":  # bin indices, whatever the number of logits
            return torch.randint(0, config.num_bins, (self.batch_size,), generator=generator)
        if config.problem_type == "regression":  # mean scores on the bins' scale
            low, high = config.bin_scores[0], config.bin_scores[-1]
            return low + (high - low) * torch.rand(self.batch_size, generator=generator)
        votes = torch.rand(self.batch_size, config.num_bins, generator=generator)
        return votes / votes.sum(-1, keepdim=True)


class CSKDCommonTests(ModelTesterMixin):
    """What transformers' own timm_wrapper test also leaves out, and nothing else."""

    architecture = "test_resnet"
    has_attentions = False
    test_resize_embeddings = False
    test_torch_exportable = False
    # The config file carries no copyright year; this opts in to the test the suite reserves for newer models.
    test_can_init_all_missing_weights_before_2023 = True

    def setUp(self):
        self.model_tester = CSKDModelTester(self, self.architecture)
        self.config_tester = ConfigTester(self, config_class=CSKDConfig, has_text_modality=False, common_properties=[])

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        """The labels of our heads: those of the config's problem type for the scorer (vote distributions when it has
        none), teacher embeddings for alignment."""
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels:
            if issubclass(model_class, CSKDForAestheticScoring):
                inputs_dict["labels"] = self.model_tester.scoring_labels()
            elif model_class is CSKDForFeatureAlignment:
                generator = torch.Generator().manual_seed(0)
                batch_size = self.model_tester.batch_size
                inputs_dict["teacher_embeds"] = torch.randn(batch_size, PROJECTION_DIM, generator=generator)
        return inputs_dict

    def test_problem_types(self):
        """Multi-label classification is refused before any forward pass, also when `problem_type` is set after the
        config was built (the bins are ordered and sum to one). The suite's other two sub-tests run as they are: one
        label and bin indices (`single_label_classification`: the EMD of the scalar head's distribution to the
        one-hot), and one label and mean scores (`regression`)."""
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        config.problem_type = "multi_label_classification"
        config.num_labels = 2
        with self.assertRaisesRegex(ValueError, "bins are ordered"):
            CSKDForAestheticScoring(config)
        model = CSKDForAestheticScoring(self.model_tester.get_config())
        model.config.problem_type = "multi_label_classification"
        with self.assertRaisesRegex(ValueError, "bins are ordered"):
            model(**inputs_dict)

        class RefusingMultiLabel(CSKDForAestheticScoring):
            def __init__(self, config):
                if config.problem_type == "multi_label_classification":
                    raise unittest.SkipTest("refused before the forward pass, as asserted above")
                super().__init__(config)

        RefusingMultiLabel.__name__ = CSKDForAestheticScoring.__name__  # as the static table names it
        all_model_classes = self.all_model_classes
        self.all_model_classes = tuple(
            RefusingMultiLabel if cls is CSKDForAestheticScoring else cls for cls in all_model_classes
        )
        try:
            super().test_problem_types()
        finally:
            self.all_model_classes = all_model_classes

    def test_can_load_ignoring_mismatched_shapes(self):
        """The suite's contract for a head of another size: `RuntimeError` without `ignore_mismatched_sizes`, a
        re-initialised head with it and every other weight loaded as saved. The suite looks for the classifier
        among the model's direct children; ours is the last layer of `head.layers`, so the same checks are made here
        on it."""
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        config.num_labels = 3
        model = CSKDForAestheticScoring(config)
        with tempfile.TemporaryDirectory() as folder:
            model.save_pretrained(folder)
            with self.assertRaises(RuntimeError) as refusal:
                CSKDForAestheticScoring.from_pretrained(folder, num_labels=42)
            self.assertIn(folder, str(refusal.exception))  # ours names the folder as well
            with CaptureLogger(logging.get_logger("transformers.modeling_utils")) as captured:
                reheaded = CSKDForAestheticScoring.from_pretrained(folder, num_labels=42, ignore_mismatched_sizes=True)
        self.assertIn("Reinit due to size mismatch", captured.out)
        classifier = reheaded.head.layers[-1]
        self.assertEqual((classifier.out_features, reheaded.config.num_labels), (42, 42))
        saved, classifier_prefix = dict(model.named_parameters()), f"head.layers.{len(reheaded.head.layers) - 1}."
        for name, parameter in reheaded.named_parameters():
            if not name.startswith(classifier_prefix):
                torch.testing.assert_close(parameter, saved[name], rtol=0, atol=0, msg=name)
        self.assertLessEqual(abs(classifier.weight.mean().item()), 0.1)

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_hidden_states_output(self):
        """timm stages have no common sequence length: check each stage's spatial shape, and index selection."""
        config, inputs_dict = self.model_tester.prepare_config_and_inputs_for_common()
        expected = HIDDEN_STATE_SHAPES[self.architecture]
        for model_class in self.all_model_classes:
            model = model_class(config).eval()
            with torch.no_grad():
                outputs = model(**inputs_dict, output_hidden_states=True)
            self.assertEqual([list(h.shape[1:]) for h in outputs.hidden_states], expected)
            with torch.no_grad():
                outputs = model(**inputs_dict, output_hidden_states=[-1])
            self.assertEqual([list(h.shape[1:]) for h in outputs.hidden_states], expected[-1:])

    @unittest.skip(reason="a vision model has no inputs_embeds")
    def test_inputs_embeds(self):
        pass

    @unittest.skip(reason="a vision model has no token embeddings to get or set")
    def test_model_get_set_embeddings(self):
        pass

    # The suite's own skip says no model had a differentiable loss; the scorer and the aligner have one, but the test
    # makes the input embeddings' weight require grads, and pixels go through no embedding table.
    @unittest.skip(reason="a vision model has no input embedding table to make require grads")
    def test_enable_input_require_grads_with_gradient_checkpointing(self):
        pass


class CSKDResNetTest(CSKDCommonTests, unittest.TestCase):
    all_model_classes = (CSKDModel, CSKDForAestheticScoring, CSKDForFeatureAlignment)


class CSKDViTTest(CSKDResNetTest):
    architecture = "test_vit"


class CSKDImageProcessingTester(ImageProcessingTester):
    def __init__(self, parent):
        super().__init__(parent, batch_size=7, min_resolution=30, max_resolution=400)
        self.image_size = 18
        self.resize_size = 20

    def _get_image_processing_classes(self):
        # The suite finds classes by the test file's folder name in transformers' own table; ours is registered at
        # run time. One class serves both backends (it takes PIL images, numpy arrays and tensors).
        return {"torchvision": CSKDImageProcessor}

    def prepare_image_processor_dict(self):
        return {"image_size": self.image_size, "resize_size": self.resize_size}

    def expected_output_image_shape(self, images):
        return self.num_channels, self.image_size, self.image_size


class CSKDImageProcessingTest(ImageProcessingTestMixin, unittest.TestCase):
    image_processor_tester_class = CSKDImageProcessingTester
