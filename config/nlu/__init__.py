"""Default NLU training data (Rasa YAML) and the affect seed set; package data only."""
