"""clipper's web app: the REST API (`web/api.py`) and artifact serving (`web/artifacts.py`) on FastAPI, built by
`web.app.create_app` and served by `clipper web`. Pages go in their own routers on the same app."""
