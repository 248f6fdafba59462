"""Local leaderboards: one validated JSON document per track and scale, plus compare and render.

Public API: ``leaderboard.store`` (``entry_from_run``, ``add_entry``, ``load_leaderboard``,
``rank_of``), ``leaderboard.compare.compare_entries``, ``leaderboard.render.render``.
"""
