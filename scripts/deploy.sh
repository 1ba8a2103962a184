#!/usr/bin/env bash
# `make deploy`: upload artefacts/ (from `make package`) and deploy infra/cloudformation/pipeline.yaml.
# Needs an AWS account, the AWS CLI v2 and credentials (aws sts get-caller-identity must work).
#
#   scripts/deploy.sh [--dry-run]
#
# Settings (environment):
#   DEMAND_PREFIX     resource name prefix                     (default: demand)
#   DEMAND_TENANT     tenant tag                               (default: default)
#   PROJECT_TAG       project tag                              (default: demand-pipeline)
#   AWS_REGION        region                                   (default: us-east-1)
#   BUCKET_SUFFIX     suffix for globally unique bucket names  (default: empty = ResourceNames.bucket(role))
#   ARTEFACTS_BUCKET  code bucket, created if missing          (default: <prefix>-artefacts-<account id>)
#   RELEASE           key prefix of this upload                (default: releases/<git sha or timestamp>)
#   STACK_NAME        CloudFormation stack                     (default: <prefix>-pipeline)
#   PARAMETERS        extra "Key=Value ..." parameter overrides (e.g. "StreamMode=PROVISIONED ShardCount=4")
# --dry-run prints the AWS commands instead of running them.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
[ "${1:-}" = "--dry-run" ] && DRY_RUN=1
run() { if [ "$DRY_RUN" = 1 ]; then echo "+ $*"; else "$@"; fi; }

PREFIX=${DEMAND_PREFIX:-demand}
TENANT=${DEMAND_TENANT:-default}
PROJECT=${PROJECT_TAG:-demand-pipeline}
REGION=${AWS_REGION:-us-east-1}
SUFFIX=${BUCKET_SUFFIX:-}
STACK=${STACK_NAME:-${PREFIX}-pipeline}
RELEASE=${RELEASE:-releases/$(git rev-parse --short HEAD 2>/dev/null || date -u +%Y%m%dT%H%M%S)}
TEMPLATE=infra/cloudformation/pipeline.yaml

command -v aws >/dev/null || { echo "error: the AWS CLI is required (https://aws.amazon.com/cli/)" >&2; exit 2; }
[ -f artefacts/SHA256SUMS ] || { echo "error: artefacts/ is missing; run make package first" >&2; exit 2; }
if [ "$DRY_RUN" = 1 ]; then
  ACCOUNT=${AWS_ACCOUNT_ID:-123456789012}
else
  ACCOUNT=$(aws sts get-caller-identity --query Account --output text) \
    || { echo "error: no AWS credentials (aws sts get-caller-identity failed)" >&2; exit 2; }
fi
BUCKET=${ARTEFACTS_BUCKET:-${PREFIX}-artefacts-${ACCOUNT}}

echo "deploying stack=$STACK region=$REGION account=$ACCOUNT artefacts=s3://$BUCKET/$RELEASE"

# 1. The artefacts bucket lives outside the stack (the stack's Lambda and Flink code must exist before it).
if [ "$DRY_RUN" = 1 ] || ! aws s3api head-bucket --bucket "$BUCKET" --region "$REGION" 2>/dev/null; then
  if [ "$REGION" = us-east-1 ]; then
    run aws s3api create-bucket --bucket "$BUCKET" --region "$REGION"
  else
    run aws s3api create-bucket --bucket "$BUCKET" --region "$REGION" \
      --create-bucket-configuration "LocationConstraint=$REGION"
  fi
  run aws s3api put-public-access-block --bucket "$BUCKET" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
  run aws s3api put-bucket-encryption --bucket "$BUCKET" --server-side-encryption-configuration \
    '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"aws:kms"},"BucketKeyEnabled":true}]}'
  run aws s3api put-bucket-versioning --bucket "$BUCKET" --versioning-configuration Status=Enabled
  run aws s3api put-bucket-tagging --bucket "$BUCKET" \
    --tagging "TagSet=[{Key=project,Value=$PROJECT},{Key=tenant,Value=$TENANT}]"
fi

# 2. Code: one prefix per release, so a new release changes the S3 keys and CloudFormation updates the code.
run aws s3 sync artefacts/ "s3://$BUCKET/$RELEASE/" --region "$REGION" --only-show-errors

# 3. The stack.
# shellcheck disable=SC2086  # PARAMETERS is a list of Key=Value words
run aws cloudformation deploy \
  --region "$REGION" \
  --stack-name "$STACK" \
  --template-file "$TEMPLATE" \
  --capabilities CAPABILITY_NAMED_IAM \
  --no-fail-on-empty-changeset \
  --parameter-overrides Prefix="$PREFIX" Tenant="$TENANT" Project="$PROJECT" BucketSuffix="$SUFFIX" \
    ArtefactsBucket="$BUCKET" ArtefactsPrefix="$RELEASE" ${PARAMETERS:-} \
  --tags project="$PROJECT" tenant="$TENANT"

run aws cloudformation describe-stacks --region "$REGION" --stack-name "$STACK" \
  --query "Stacks[0].Outputs[].[OutputKey,OutputValue]" --output table
echo "next: aws kinesisanalyticsv2 start-application --application-name ${PREFIX}-outlier-split --region $REGION"
