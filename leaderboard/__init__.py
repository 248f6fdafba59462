"""Local leaderboards: one validated JSON document per track and scale, plus compare and render.

Public API: ``leaderboard.store`` (``entry_from_run``, ``add_entry``, ``load_leaderboard``,
``rank_of``, ``user_board_dir``), ``leaderboard.boards`` (``load_boards``: the reference board and
the user's read together; ``standing_line``), ``leaderboard.compare.compare_entries`` and
``method_deltas``, ``leaderboard.render.render``.
"""
