from django.apps import AppConfig


class MarketdataConfig(AppConfig):
    name = "liaison.marketdata"
    label = "marketdata"
    verbose_name = "Market data"
