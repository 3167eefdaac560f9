"""dideban.web: the dashboard (server-rendered pages, plotly.js served locally), mounted on the
API's app by `dideban.web.pages.register_pages(app, reader)`."""
