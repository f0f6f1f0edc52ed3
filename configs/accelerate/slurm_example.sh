#!/bin/bash
# SLURM: one task per node, each launching one process per GPU.
#SBATCH --job-name=cskd-cfa
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
set -euo pipefail
MAIN_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun bash -c 'accelerate launch --config_file configs/accelerate/multi_node.yaml \
    --machine_rank $SLURM_NODEID --main_process_ip '"$MAIN_HOST"' \
    scripts/cfa.py --teacher openai/clip-vit-large-patch14 --architecture swin_base_patch4_window7_224 \
    --backbone_pretrained --unlabeled /data/imagenet/train "parquet:/data/openimages/*.parquet" \
    --teacher_cache /scratch/cfa-cache-l14 --output_dir outputs/cfa-swin-base --num_workers 8'
