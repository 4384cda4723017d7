"""What exists only for the notebooks: figures (viz), widgets, exercise checks, and the classroom commands.

The model never imports this package: ``mistral_mini`` minus ``lessons`` is Mistral 7B and what runs it.
"""
