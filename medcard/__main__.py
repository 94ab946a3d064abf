from medcard.cli import app

app()
