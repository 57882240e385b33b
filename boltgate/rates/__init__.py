"""Exchange rates (fiat per BTC) for fiat-denominated payments: providers and the caching service."""

from boltgate.rates.base import RateProvider, RateProviderError
from boltgate.rates.coinbase import CoinbaseRateProvider
from boltgate.rates.coingecko import CoinGeckoRateProvider
from boltgate.rates.fixed import FixedRateProvider
from boltgate.rates.kraken import KrakenRateProvider
from boltgate.rates.service import PROVIDER_NAMES, Rate, RateService, build_providers

__all__ = [
    "PROVIDER_NAMES",
    "CoinGeckoRateProvider",
    "CoinbaseRateProvider",
    "FixedRateProvider",
    "KrakenRateProvider",
    "Rate",
    "RateProvider",
    "RateProviderError",
    "RateService",
    "build_providers",
]
