def test_the_suite_runs_under_gevent():
    from gevent import monkey

    assert monkey.is_module_patched("socket")
