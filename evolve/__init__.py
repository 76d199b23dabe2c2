"""Genome encoding, DEAP operators and search loop, accuracy predictor, random-search baseline."""

from evolve.ea import LatencyModel, SearchResult, random_search, search
from evolve.genome import decode, encode, features, gene_ranges
from evolve.measure import measure_subnets, sample_archs
from evolve.predictor import AccuracyPredictor, build_predictor, fit, load_predictor

__all__ = ["AccuracyPredictor", "LatencyModel", "SearchResult", "build_predictor", "decode", "encode", "features",
           "fit", "gene_ranges", "load_predictor", "measure_subnets", "random_search", "sample_archs", "search"]
