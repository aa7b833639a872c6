from django.apps import AppConfig


class BoardConfig(AppConfig):
    name = "live.board"
    label = "board"
    verbose_name = "Race board"
