"""The original stack's stream API (FastAPI + SQLAlchemy, as the seed platform had it), rewritten here
only as the benchmark's baseline. Same table, same endpoints and JSON shapes as vectorflow-api."""
import os
import uuid
from datetime import datetime
from typing import Optional

from fastapi import Depends, FastAPI, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Boolean, Column, DateTime, Float, Integer, String, Text, create_engine, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Session, declarative_base, sessionmaker

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://vectorflow:vectorflow@localhost:5432/vectorflow")
# The original used psycopg2; newer SQLAlchemy defaults to psycopg 3, so name the driver.
engine = create_engine(DATABASE_URL.replace("postgresql://", "postgresql+psycopg2://", 1), pool_pre_ping=True, pool_size=5)
SessionLocal = sessionmaker(bind=engine, autoflush=False, autocommit=False)
Base = declarative_base()


class CameraStream(Base):
    __tablename__ = "camera_streams"
    id = Column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name = Column(String(255), nullable=False)
    rtsp_url = Column(Text, nullable=False)
    grid_size = Column(Integer, nullable=False, default=16)
    threshold = Column(Float, nullable=False, default=1.2)
    is_active = Column(Boolean, nullable=False, default=False)
    worker_container_name = Column(String(255))
    worker_started_at = Column(DateTime(timezone=True))
    created_at = Column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class StreamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    rtsp_url: str = Field(max_length=2048)
    grid_size: int = Field(16, ge=4, le=256)
    threshold: float = Field(1.2, ge=0, le=1000)
    is_active: bool = False


class StreamUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Optional[str] = Field(None, min_length=1, max_length=200)
    rtsp_url: Optional[str] = Field(None, max_length=2048)
    grid_size: Optional[int] = Field(None, ge=4, le=256)
    threshold: Optional[float] = Field(None, ge=0, le=1000)
    is_active: Optional[bool] = None


class StreamOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    rtsp_url: str
    grid_size: int
    threshold: float
    is_active: bool
    worker_container_name: Optional[str]
    worker_started_at: Optional[datetime]
    created_at: datetime
    status: Optional[dict] = None


app = FastAPI(title="Vector Flow API (original stack, benchmark baseline)")


def get_db():
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


def _get(db: Session, stream_id: uuid.UUID) -> CameraStream:
    s = db.get(CameraStream, stream_id)
    if s is None:
        raise HTTPException(status_code=404, detail="Stream not found")
    return s


@app.get("/health")
def health():
    return {"status": "ok"}


@app.get("/streams", response_model=list[StreamOut])
def list_streams(db: Session = Depends(get_db)):
    return db.query(CameraStream).order_by(CameraStream.created_at, CameraStream.id).all()


@app.post("/streams", response_model=StreamOut, status_code=201)
def create_stream(body: StreamCreate, db: Session = Depends(get_db)):
    s = CameraStream(**body.model_dump())
    db.add(s)
    db.commit()
    db.refresh(s)
    return s


@app.get("/streams/{stream_id}", response_model=StreamOut)
def get_stream(stream_id: uuid.UUID, db: Session = Depends(get_db)):
    return _get(db, stream_id)


@app.put("/streams/{stream_id}", response_model=StreamOut)
def update_stream(stream_id: uuid.UUID, body: StreamUpdate, db: Session = Depends(get_db)):
    s = _get(db, stream_id)
    for k, v in body.model_dump(exclude_unset=True).items():
        setattr(s, k, v)
    db.commit()
    db.refresh(s)
    return s


@app.delete("/streams/{stream_id}", status_code=204)
def delete_stream(stream_id: uuid.UUID, db: Session = Depends(get_db)):
    db.delete(_get(db, stream_id))
    db.commit()
    return Response(status_code=204)


def _set_active(stream_id: uuid.UUID, active: bool, db: Session):
    s = _get(db, stream_id)
    s.is_active = active
    db.commit()
    db.refresh(s)
    return s


@app.post("/streams/{stream_id}/activate", response_model=StreamOut)
def activate(stream_id: uuid.UUID, db: Session = Depends(get_db)):
    return _set_active(stream_id, True, db)


@app.post("/streams/{stream_id}/deactivate", response_model=StreamOut)
def deactivate(stream_id: uuid.UUID, db: Session = Depends(get_db)):
    return _set_active(stream_id, False, db)
