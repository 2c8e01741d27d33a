"""What an operator runs and watches: health and metrics, logging, doctor, backup."""
