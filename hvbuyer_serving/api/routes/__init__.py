"""One router per concern: prediction, customer lookup, model card, health, metrics, admin."""
