#!/bin/sh
# `make package`: the deployable stack in dist/ (sam.yaml + deployment.zip), checked.
#
#   chalice package --merge-template template.yaml   functions, API, event sources + our resources
#   deploy/finalize_template.py                       what a static merge cannot express (see there)
#   deploy/bundle.py                                  deployment.zip: unused botocore models out, bytecode in
#   deploy/invariants.py                              the stack's rules (PITR, visibility, IAM, ...)
#   cfn-lint                                          CloudFormation/SAM schema and references
#
# IMAPLESS_RESOURCE_PREFIX is the literal text ${AWS::StackName}- while packaging: app.py
# computes the queue names of its SQS event sources from it, and Chalice writes them into
# an Fn::Sub, so they come out as the stack's own queue names whatever the stack is called.
set -eu
out="${1:-dist}"
venv="${VENV:-.venv}"
rm -rf "$out"
AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" IMAPLESS_RESOURCE_PREFIX='${AWS::StackName}-' \
    "$venv/bin/chalice" package --stage dev --pkg-format cloudformation --template-format yaml \
    --merge-template template.yaml "$out"
"$venv/bin/python" -m deploy.finalize_template "$out/sam.yaml"
"$venv/bin/python" -m deploy.bundle "$out"
"$venv/bin/python" -m deploy.invariants "$out/sam.yaml"
"$venv/bin/cfn-lint" --non-zero-exit-code error -- "$out/sam.yaml"
ls -l "$out"
