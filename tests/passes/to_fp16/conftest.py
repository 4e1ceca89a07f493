import sys
from pathlib import Path

# The models and the verdict helper live beside the tests (bench/to_fp16.py imports them too).
sys.path.insert(0, str(Path(__file__).resolve().parent))
