#!/bin/sh
# `make deploy`: upload dist/ (from `make package`) and create or update the stack.
# Usage: deploy/deploy.sh STACK REGION ARTIFACT_BUCKET VPC_ID SUBNETS REPOSITORY TAG ALARM_EMAIL "EXTRA=1 ..."
#   ARTIFACT_BUCKET  an S3 bucket you own in REGION, for the Lambda code bundle
#   SUBNETS          comma-separated subnet ids with outbound internet access (NAT or public)
#   EXTRA            more CloudFormation parameters, e.g. "WatcherDesiredCount=2 AlarmTopicArn=arn:..."
set -eu
stack="$1" region="$2" bucket="$3" vpc="$4" subnets="$5" repository="$6" tag="$7" email="$8" extra="${9:-}"
for required in bucket vpc subnets; do
    eval "value=\$$required"
    [ -n "$value" ] || { echo "make deploy: set ${required} (see docs/deploy.md)" >&2; exit 2; }
done
aws cloudformation package --region "$region" --template-file dist/sam.yaml --s3-bucket "$bucket" \
    --s3-prefix "$stack" --output-template-file dist/packaged.yaml
# shellcheck disable=SC2086 # $extra is a list of Key=Value words
aws cloudformation deploy --region "$region" --stack-name "$stack" --template-file dist/packaged.yaml \
    --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset \
    --parameter-overrides WatcherVpcId="$vpc" WatcherSubnets="$subnets" WatcherImageRepository="$repository" \
        WatcherImageTag="$tag" AlarmEmail="$email" $extra
aws cloudformation describe-stacks --region "$region" --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='EndpointURL' || OutputKey=='WatcherServiceName']" --output table
