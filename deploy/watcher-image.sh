#!/bin/sh
# `make watcher-image`: build workers/Dockerfile and push it to ECR (creates the repository once).
# Usage: deploy/watcher-image.sh REPOSITORY TAG REGION
set -eu
repository="$1" tag="$2" region="$3"
account=$(aws sts get-caller-identity --query Account --output text)
registry="$account.dkr.ecr.$region.amazonaws.com"
aws ecr describe-repositories --region "$region" --repository-names "$repository" >/dev/null 2>&1 \
    || aws ecr create-repository --region "$region" --repository-name "$repository" \
        --image-tag-mutability IMMUTABLE --image-scanning-configuration scanOnPush=true >/dev/null
aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
docker build --platform linux/amd64 -f workers/Dockerfile -t "$registry/$repository:$tag" .
docker push "$registry/$repository:$tag"
echo "pushed $registry/$repository:$tag"
