"""transformers' own common suites (model, config, image processor) run against the CSKD classes.

The suites come from the installed transformers version's sdist (see `tests/transformers_suites.py`); every skip
below carries the reason it does not apply to a vision model without attention outputs or token embeddings.
"""

import os
import unittest

import pytest
import torch

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
        return self.get_config(), {"pixel_values": pixel_values}


class CSKDCommonTests(ModelTesterMixin):
    """What transformers' own timm_wrapper test also leaves out, and nothing else."""

    architecture = "test_resnet"
    has_attentions = False
    test_resize_embeddings = False
    test_torch_exportable = False
    # The config file carries no copyright year; this opts in to the test the suite reserves for newer models.
    test_can_init_all_missing_weights_before_2023 = True

    def setUp(self):
        self.model_tester = CSKDModelTester(self, self.architecture, is_training=self.is_training)
        self.config_tester = ConfigTester(self, config_class=CSKDConfig, has_text_modality=False, common_properties=[])

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        """The labels of our heads: vote distributions for the scorer, teacher embeddings for alignment."""
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels:
            batch_size = self.model_tester.batch_size
            # The same labels on every call: tests compare two calls' losses.
            generator = torch.Generator().manual_seed(0)
            if model_class is CSKDForAestheticScoring:
                votes = torch.rand(batch_size, self.model_tester.num_bins, generator=generator)
                inputs_dict["labels"] = votes / votes.sum(-1, keepdim=True)
            elif model_class is CSKDForFeatureAlignment:
                inputs_dict["teacher_embeds"] = torch.randn(batch_size, PROJECTION_DIM, generator=generator)
        return inputs_dict

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


class CSKDModelResNetTest(CSKDCommonTests, unittest.TestCase):
    all_model_classes = (CSKDModel,)
    # The bare backbone has no loss; transformers skips base models in `test_training` by their names in a static
    # table, which a model registered at run time is not in.
    is_training = False


class CSKDHeadsResNetTest(CSKDCommonTests, unittest.TestCase):
    all_model_classes = (CSKDForAestheticScoring, CSKDForFeatureAlignment)
    is_training = True


class CSKDModelViTTest(CSKDModelResNetTest):
    architecture = "test_vit"


class CSKDHeadsViTTest(CSKDHeadsResNetTest):
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
