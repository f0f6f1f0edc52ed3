"""Writers of tiny copies of AVA, AADB and PARA in their original file formats, with real photographs."""

import csv
from pathlib import Path

from PIL import Image

from cskd_hf.data.samples import sample_photo

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "colorwheel", "immunohistochemistry"]

# AVA.txt rows: index, id, votes for 1..10, tag, tag, challenge. The first is the example row of the AVA readme.
AVA_ROWS = [
    "1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396",
    "2 953958 10 7 15 33 34 28 9 5 3 3 1 21 1396",
    "3 954184 0 0 4 8 41 56 10 5 0 0 0 0 1396",
    "4 954113 0 1 4 6 48 37 23 5 2 2 15 21 1396",
    "5 953980 0 3 6 47 37 23 5 1 2 0 48 0 1396",
    "6 954175 1 2 5 25 33 32 12 3 1 0 15 1 1396",
    "7 954100 0 0 0 2 10 20 30 20 10 8 0 0 1396",  # image missing on disk
    "8 954200 5 5 5 5 5 5 5 5 5 5 0 0 1396",  # image truncated
]
AVA_MISSING, AVA_CORRUPT = "954100", "954200"
AVA_TEST_IDS = ["953958", "954175", AVA_CORRUPT]


def _save_photo(name: str, path: Path, size=(96, 72)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sample_photo(name)).resize(size).save(path, quality=90)


def _truncated(path: Path) -> None:
    _save_photo("coins", path.with_suffix(".tmp.jpg"), size=(400, 300))
    path.write_bytes(path.with_suffix(".tmp.jpg").read_bytes()[:1500])
    path.with_suffix(".tmp.jpg").unlink()


def write_ava(root: Path) -> Path:
    (root / "AVA.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "AVA.txt").write_text("\n".join(AVA_ROWS) + "\n")
    for row, photo in zip(AVA_ROWS[:6], PHOTOS):
        _save_photo(photo, root / "images" / f"{row.split()[1]}.jpg")
    _truncated(root / "images" / f"{AVA_CORRUPT}.jpg")
    lists = root / "aesthetics_image_lists"
    lists.mkdir()
    (lists / "generic_test.jpgl").write_text("\n".join(AVA_TEST_IDS) + "\n")
    return root


AADB_SPLITS = {
    "imgListTrainRegression_score.txt": [("farm1_a.jpg", 0.6), ("farm1_b.jpg", 0.05), ("farm1_c.jpg", 1.0)],
    "imgListValidationRegression_score.txt": [("farm1_d.jpg", 0.4)],
    "imgListTestNewRegression_score.txt": [("farm1_e.jpg", 0.75), ("farm1_missing.jpg", 0.5)],
}
# Raw ratings (1..5) of five raters for some images, one rater per row as Mechanical Turk exports them.
AADB_RATINGS = {"farm1_a.jpg": [3, 4, 3, 4, 3], "farm1_b.jpg": [1, 1, 2, 1, 1]}


def write_aadb(root: Path, with_ratings: bool = False) -> Path:
    labels = root / "imgListFiles_label"
    labels.mkdir(parents=True)
    names = []
    for file_name, rows in AADB_SPLITS.items():
        (labels / file_name).write_text("".join(f"{name} {score}\n" for name, score in rows))
        names += [name for name, _ in rows]
    for name, photo in zip([n for n in names if "missing" not in n], PHOTOS):
        _save_photo(photo, root / "datasetImages_originalSize" / name)
    if with_ratings:
        with open(root / "AADB_AllinAll.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["ImageFile", "Answer.overallScore", "Answer.balancingElement"])
            for name, ratings in AADB_RATINGS.items():
                for rating in ratings:
                    writer.writerow([name, rating, 0])
    return root


PARA_LEVELS = [f"aestheticScore_{1 + 0.5 * i:.1f}" for i in range(9)]
PARA_GIAA = {
    "PARA-GiaaTrain.csv": [
        ("iaa_pub1_.jpg", "session1", [0, 0, 1, 2, 5, 8, 4, 2, 0]),
        ("iaa_pub2_.jpg", "session1", [0, 1, 3, 6, 6, 3, 2, 1, 0]),
        ("iaa_pub3_.jpg", "session2", [1, 0, 0, 0, 2, 4, 6, 5, 4]),
    ],
    "PARA-GiaaTest.csv": [
        ("iaa_pub4_.jpg", "session2", [0, 0, 0, 3, 9, 8, 2, 0, 0]),
        ("iaa_pub5_.jpg", "session3", [2, 2, 4, 6, 4, 2, 1, 1, 0]),
    ],
}


def para_mean(votes) -> float:
    return sum((1 + 0.5 * i) * v for i, v in enumerate(votes)) / sum(votes)


def write_para(root: Path) -> Path:
    annotation = root / "annotation"
    annotation.mkdir(parents=True)
    photos = iter(PHOTOS)
    per_user = []
    for file_name, rows in PARA_GIAA.items():
        with open(annotation / file_name, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["imageName", "sessionId", *PARA_LEVELS, "aestheticScore_mean", "aestheticScore_std"])
            for name, session, votes in rows:
                writer.writerow([name, session, *votes, round(para_mean(votes), 4), 0.5])
                _save_photo(next(photos), root / "imgs" / session / name)
                per_user += [
                    (f"user{u}", name, session, 1 + 0.5 * level)
                    for level, count in enumerate(votes)
                    for u in range(count)
                ]
    with open(annotation / "PARA-Images.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["userId", "imageName", "sessionId", "aestheticScore"])
        writer.writerows(per_user)
    return root
