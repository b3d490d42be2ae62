"""Evaluation: classification metrics, saliency maps, embedding plots, attacks, OOD metrics and figures."""
