"""The trainers' labeled loaders: training ones shuffle and drop the short last batch whether or not they augment."""

from datasets import Dataset, Image
from torch.utils.data import RandomSampler, SequentialSampler

from cskd_hf import CSKDImageProcessor
from cskd_hf.training.arguments import CommonArguments
from cskd_hf.training.loaders import labeled_loader


def test_a_training_loader_shuffles_without_augmentation_and_an_evaluation_one_keeps_the_order(tmp_path):
    args = CommonArguments(output_dir=str(tmp_path), num_workers=0)
    processor = CSKDImageProcessor(image_size=32)
    dataset = Dataset.from_dict({"image": [None] * 10}).cast_column("image", Image())
    centre_crop_only = labeled_loader(dataset, processor, args, train=True, batch_size=4, augment=False)
    assert isinstance(centre_crop_only.sampler, RandomSampler) and centre_crop_only.drop_last
    assert centre_crop_only.dataset.train is False  # --no_train_augmentation: the centre view, still shuffled
    augmented = labeled_loader(dataset, processor, args, train=True, batch_size=4)
    assert isinstance(augmented.sampler, RandomSampler) and augmented.dataset.train is True
    evaluation = labeled_loader(dataset, processor, args, train=False, batch_size=4)
    assert isinstance(evaluation.sampler, SequentialSampler) and not evaluation.drop_last
    assert evaluation.dataset.train is False
