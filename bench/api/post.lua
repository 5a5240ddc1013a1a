-- wrk script: POST /streams with a valid JSON body.
wrk.method = "POST"
wrk.body = '{"name":"bench","rtsp_url":"rtsp://cam.local:8554/live","grid_size":16,"threshold":1.2}'
wrk.headers["Content-Type"] = "application/json"
