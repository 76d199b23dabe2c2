"""Genome encoding, DEAP operators and search loops (single budget, Pareto front), accuracy predictors,
baselines (random search, aging evolution), the literature's other strategies (REINFORCE, TPE)."""

from evolve._fast import AccuracyCache, LatencyModel
from evolve.baselines import aging_evolution, random_search
from evolve.ea import SearchResult, search
from evolve.front import Front, FrontPoint, search_front, search_fronts
from evolve.genome import decode, encode, features, gene_ranges
from evolve.gp_predictor import GPPredictor, fit_gp
from evolve.measure import measure_subnets, sample_archs
from evolve.predictor import AccuracyPredictor, build_predictor, fit, load_predictor
from evolve.strategies import reinforce, tpe
from evolve.tree_predictor import TreePredictor, fit_trees

__all__ = ["AccuracyCache", "AccuracyPredictor", "Front", "FrontPoint", "GPPredictor", "LatencyModel", "SearchResult",
           "TreePredictor", "fit_gp",
           "aging_evolution", "build_predictor", "decode", "encode", "features", "fit", "fit_trees", "gene_ranges",
           "load_predictor", "measure_subnets", "random_search", "reinforce", "sample_archs", "search", "search_front",
           "search_fronts", "tpe"]
