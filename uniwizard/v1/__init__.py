"""Generated from protos/uniwizard/v1 by scripts/gen_protos.py. Do not edit."""
