"""clipper's web app: the REST API (`clipper_app/web/api.py`) and artifact serving (`clipper_app/web/artifacts.py`) on FastAPI, built by
`clipper_app.web.app.create_app` and served by `clipper web`. Pages go in their own routers on the same app."""
